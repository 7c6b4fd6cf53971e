"""The summary pipeline: transcripts to summaries, the durable outbox, background storing and replay."""
