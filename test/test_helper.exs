ExUnit.start(exclude: [:chaos])
