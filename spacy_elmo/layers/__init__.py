"""thinc layers: the biLM over Docs, the ELMo listener, the task mix and the tok2vec."""
