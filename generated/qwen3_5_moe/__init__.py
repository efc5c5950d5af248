# Generated modeling files: written by patchgen, never edited by hand.
