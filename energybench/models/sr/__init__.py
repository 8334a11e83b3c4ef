"""Super-resolution models (bicubic, espcn, ckbg), re-parameterisation blocks and complexity.

Kept free of imports so that importing the registry never loads model code.
"""
