"""mmlego.evaluation"""
