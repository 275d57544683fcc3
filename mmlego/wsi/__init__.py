"""mmlego.wsi"""
