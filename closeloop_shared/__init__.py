"""What truly crosses Closeloop's services: event contract, Mongo provider, metrics,
HTTP edge helpers, config keys, org reference data and test fixtures. Nothing else."""
