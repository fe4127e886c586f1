"""Building blocks: padding-aware convolutions, SEANet, HiFi-GAN, LSTM, frame-rate iSTFT decoder."""
