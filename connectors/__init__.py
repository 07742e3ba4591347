"""Connectors: poll a source, validate, produce to Kafka, checkpoint, back off."""
