"""tzoo.recipes"""
