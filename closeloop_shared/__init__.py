"""What truly crosses Closeloop's services: event contract, bus plumbing, outbox, Mongo
provider, HTTP edge, identity and access, metrics, config keys and org reference data.
Nothing else: test helpers live under tests/."""
