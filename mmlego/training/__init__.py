"""mmlego.training"""
