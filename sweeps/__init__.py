"""tzoo.sweeps"""
