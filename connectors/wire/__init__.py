"""Wire formats: each topic's messages, encoded and decoded in one module per format."""
