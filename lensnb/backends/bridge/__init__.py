"""backends/bridge"""
