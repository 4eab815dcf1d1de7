"""Declared sources (json_api, html_list): request, items, fields, paging, detail.

docs/ARCHITECTURE.md ("Sources") has the map.
"""
