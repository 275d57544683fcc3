"""mmlego.demo"""
