"""Day-two operations over the inventories Ansible uses: status, logs, releases, smoke, run."""
