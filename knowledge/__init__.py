"""Knowledge: FAQ retrieval (embeddings + FAISS), the knowledge graph, and the retriever that combines them."""
