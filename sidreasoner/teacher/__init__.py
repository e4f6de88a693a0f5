"""Teacher-corpus synthesis: item passages and sequence narratives / reasoning paths
written by an OpenAI-compatible LLM (``client``) or the offline template teacher (``template``),
checked and written by ``synthesize``."""
