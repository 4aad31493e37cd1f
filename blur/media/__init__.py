"""Reading and writing photos and videos."""
