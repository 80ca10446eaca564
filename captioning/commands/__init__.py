"""The ``captioning`` commands, one module each: its options and its steps in order."""
