"""Memory stores over vector indexes: one tenant, one index per tenant (TVM credentials), the agent rule."""
