// p2p link lands here
