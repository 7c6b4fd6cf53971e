"""Long-term, tenant-isolated memory for agents: vector indexes, embedders, stores, TVM, plugin."""
