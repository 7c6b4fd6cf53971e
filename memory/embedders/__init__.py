"""Embedders: the protocol, Amazon Nova 2 on Bedrock, and WordLlama offline."""
