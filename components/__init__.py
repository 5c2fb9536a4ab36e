"""tzoo.components"""
