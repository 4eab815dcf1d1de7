"""Declared sources (json_api, html_list): request, items, fields, paging, detail.

The README's "Sources without feeds" shows how a user declares one.
"""
