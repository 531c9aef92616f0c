"""Reading and writing images, masks and volumes."""
