"""Audio features: MFCC-39 (numpy and openSMILE), VGGish log-mel examples, per-frame audio rows."""
