"""The Strands integration: the memory plugin, the recall tool and the fenced memory block."""
