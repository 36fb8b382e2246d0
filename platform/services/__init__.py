"""Services: the orchestration that the CLI, the web pages and the JSON API share.

A service opens the transactions and calls the layers below it (core,
``leaderboards``, ``annotation``, ``workers``); adapters above it parse input,
call one service and render the result.
"""
