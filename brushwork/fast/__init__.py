"""Fast mode: feed-forward style networks (Johnson et al. 2016, with instance norm) trained
with brushwork's own perceptual loss; `brushwork train`, `brushwork apply`, `brushwork export`."""
