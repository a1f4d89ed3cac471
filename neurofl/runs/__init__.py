"""What a run is: its identity by content, its output folder, its device, its threads and the rows
it computes side by side."""
