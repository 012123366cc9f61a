"""What flows: event records, their decoding and validation, topic declarations, dead letters."""
