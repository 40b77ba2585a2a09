"""A hypothetical Azure-style SDK, for the azure-core sample of ``docs/migration.md``."""
