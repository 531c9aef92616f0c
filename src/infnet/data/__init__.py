"""Datasets: the COVID-SemiSeg layout, a generic images+masks layout, edges, and the training Dataset."""
