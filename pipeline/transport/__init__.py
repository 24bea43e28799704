"""Kafka in and out: producers, the batching consumer loop, topics, dead letters."""
