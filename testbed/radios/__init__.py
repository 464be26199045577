"""radios"""
