"""``captioning serve``: the HTTP app, in-memory uploads with limits, request batching."""
