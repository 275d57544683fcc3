"""mmlego.report"""
