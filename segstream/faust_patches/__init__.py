"""What segstream changes in Faust and aiokafka, in one place."""
