"""tzoo.reports"""
