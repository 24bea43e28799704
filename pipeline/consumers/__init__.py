"""The pipeline process's stages: topic consumers that store what the transport brings."""
