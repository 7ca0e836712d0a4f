"""Core sequence-mixing ops, one module per op, each a chunked parallel form beside a
step-by-step recurrent reference, in flash-linear-attention's layout and argument names."""
