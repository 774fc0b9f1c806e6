"""Measurements of networks: complexity, layer responses, figures."""
