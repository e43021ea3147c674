"""LedgerLearn decentralized RAG: source nodes, client, on-chain source reliability."""
