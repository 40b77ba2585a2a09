"""A hypothetical Google Cloud style SDK, for the google-api-core sample of docs/migration.md."""
