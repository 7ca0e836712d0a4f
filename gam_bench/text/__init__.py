"""Text data for the training tasks: data sets (data), tokenizers (tokenizer) and blocks and batches (batching)."""
