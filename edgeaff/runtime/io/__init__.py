"""Sources: media files, folders of faces, cameras, csi://, rtsp:// and http(s):// streams, prepared trials."""
