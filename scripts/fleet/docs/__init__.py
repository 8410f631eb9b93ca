"""Role documentation generated from each role's argument_specs and defaults."""
