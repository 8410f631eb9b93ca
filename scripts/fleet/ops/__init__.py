"""Day-to-day operations over the same inventories Ansible uses, with Fabric."""
