"""Real local stand-ins for external infrastructure (the Kafka-protocol broker) for dev and tests."""
