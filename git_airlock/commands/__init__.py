"""One module per theme; each command parses, calls the core, prints."""
