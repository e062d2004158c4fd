// The backend (device side) lands here.
